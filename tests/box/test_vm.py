"""A VM of the box boots a cloud-config like Azure's, and its init runs units as systemd would.

The boot script here is tiny (the staging scenario, test_staging.py, runs the rendered ones): it creates the
daemons' user, writes three units the way infra/scripts.py does and `systemctl enable --now`s them.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess

import pytest

from infra.scripts import cloud_init
from tests.box.init import Init, apply_cloud_config
from tests.box.vm import Machines, VmSpec
from tests.support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NOTIFY = (
    "import os, socket, time; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
    "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET']); time.sleep(3600)"
)
HOLD = (
    "echo $(systemctl is-system-running) $(curl -s -o /dev/null -w %{http_code} http://127.0.0.1:8000/) "
    "> /var/lib/drainctl/hold.seen"
)
END = "UNIT_END"

SCRIPT = f"""#!/bin/bash
set -euo pipefail
id -u drainctl >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin drainctl
install -d -m 0750 -g drainctl /etc/drainctl
echo PORT=8000 > /etc/drainctl/app.env
cat > /etc/systemd/system/app.service <<'{END}'
[Service]
User=drainctl
EnvironmentFile=/etc/drainctl/app.env
ExecStart=/usr/bin/python3 -m http.server --bind 0.0.0.0 8000
Restart=always
RestartSec=0.2
TimeoutStopSec=5
{END}
cat > /etc/systemd/system/refused.service <<'{END}'
[Service]
ExecStart=/bin/sh -c 'exit 2'
Restart=always
RestartSec=0.2
RestartPreventExitStatus=2
{END}
cat > /etc/systemd/system/hold.service <<'{END}'
[Unit]
After=network-online.target app.service
[Service]
Type=notify
ExecStart=/usr/bin/python3 -c "{NOTIFY}"
ExecStop=/bin/bash -c '{HOLD}'
{END}
systemctl daemon-reload
systemctl enable --now refused.service
systemctl enable --now hold.service app.service
"""


def test_a_vm_boots_custom_data_and_its_init_restarts_and_stops_units_like_systemd(machines: Machines) -> None:
    root = machines.root / "vm-a"
    vm = machines.boot(VmSpec("vm-a", "10.10.0.5", {}), systemctl=Init.shim(root))
    init = Init(vm)
    booted = apply_cloud_config(vm, base64.b64decode(cloud_init(SCRIPT)).decode())
    assert booted.returncode == 0, booted.stderr

    assert vm.exec(["hostname"]).stdout.strip() == "vm-a"
    assert not os.path.exists("/etc/systemd/system/hold.service"), "the unit stayed in the VM"
    wait_until(lambda: _status("http://10.10.0.5:8000/") == "200", what="the app on the VM's address")
    assert vm.exec(["id", "-u", "drainctl"]).returncode == 0
    other = machines.boot(VmSpec("vm-b", "10.20.0.7", {"vm-a.internal": "10.10.0.5"}))
    fetched = other.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://vm-a.internal:8000/"])
    assert fetched.stdout == "200", "another VM reaches it by the name its /etc/hosts gives"
    assert ["enable", "--now", "hold.service", "app.service"] in init.calls

    first = init.services["app.service"].runs[0].pid
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: len(init.services["app.service"].runs) == 2, what="the crashed app restarted")
    refused = init.services["refused.service"]
    assert [run.exit_status for run in refused.runs] == [2], "a refused config is not restarted"
    wait_until(lambda: _status("http://10.10.0.5:8000/") == "200", what="the restarted app serving")

    init.shutdown()
    assert vm.path("/var/lib/drainctl/hold.seen").read_text().split() == ["stopping", "200"], \
        "the later unit's ExecStop ran first, during the shutdown, while the app still served"
    assert init.services["app.service"].runs[-1].stopped_by == "signal"


def _status(url: str) -> str:
    """The HTTP status curl gets from the machine's side of the box ("000": no answer)."""
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout
