"""Test package (unique module names for pytest; shared helpers are imported relatively)."""
