"""Makes docs/ a package so that pytest imports docs/conftest.py as docs.conftest, distinct from the test
folders' conftest modules."""
