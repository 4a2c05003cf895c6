"""Run dlt's rest_api source, unchanged, with the configuration in argv[1]; print what it read.

Runs inside the dlt venv (no crm_assets there). Prints ``{"resource": [item, ...]}`` as JSON.
"""

import json
import sys

from dlt.sources.rest_api import rest_api_source

config = json.loads(open(sys.argv[1]).read())
source = rest_api_source(config)
read = {name: list(resource) for name, resource in source.resources.items()}
print(json.dumps(read, default=str))
