"""Run singer's tap-harvest, unchanged, against the sandbox: ``run_tap_harvest.py ID_URL API_URL ARGS...``.

Runs inside the tap-harvest venv. The tap hard-codes Harvest's hosts (``REFRESH_URL`` for Harvest
ID and ``Client.base_url`` for the API); this points those two at the sandbox and then calls the
tap's own ``main`` with the remaining arguments. Nothing else of the tap is touched.
"""

import sys

import tap_harvest
import tap_harvest.client as client_module

id_url, api_url, *tap_args = sys.argv[1:]
client_module.REFRESH_URL = id_url.rstrip("/") + "/api/v2"
_original_init = client_module.Client.__init__


def _init_pointing_at_the_sandbox(self, config):
    _original_init(self, config)
    self.base_url = api_url.rstrip("/")


client_module.Client.__init__ = _init_pointing_at_the_sandbox
sys.argv = ["tap-harvest", *tap_args]
tap_harvest.main()
