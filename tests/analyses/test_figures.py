"""The analyses draw on bare matplotlib Figures: the caller's backend and pyplot's figure list stay untouched."""

import os
import subprocess
import sys


def test_figures_leave_backend_and_pyplot_alone(tmp_path):
    # A notebook's inline backend stands in as 'svg' (any backend other than Agg shows a switch).
    code = (
        "import matplotlib.pyplot as plt\n"
        "from sawdist.analyses._common import new_figure, save_figure\n"
        "fig, axes = new_figure(1, 2, figsize=(4, 2), squeeze=False, sharey=True)\n"
        "axes[0, 0].plot([0, 1], [0, 1])\n"
        f"rel = save_figure(fig, {str(tmp_path)!r}, 'line')\n"
        "import matplotlib\n"
        "print(matplotlib.get_backend(), axes.shape, plt.get_fignums(), rel)\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__)))).stdout
    assert out.split() == ["svg", "(1,", "2)", "[]", "figures/line.png"]
    assert (tmp_path / "figures" / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
