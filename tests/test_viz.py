"""Library manners: nothing cnnlab draws changes the user's matplotlib backend or leaves pyplot figures."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_training_inspecting_and_reporting_leave_the_backend_alone(tmp_path):
    code = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")  # a backend of the user's own choosing
        import matplotlib.pyplot as plt
        import cnnlab
        from cnnlab.viz.inspect import save_inspection
        from cnnlab.viz.report import write_report
        run = cnnlab.train(model="deeper-cnn", data="digits", epochs=1, out={str(tmp_path / 'run')!r},
                           progress=False, tensorboard=True)
        run.plot()
        save_inspection(run)
        write_report(run)
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert plt.get_fignums() == [], plt.get_fignums()
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
