"""The JSON API's contract, declared once as pydantic models: request parameters and bodies
(:mod:`.requests`), responses (:mod:`.responses`, :mod:`.analysis`) and the error shape.

The views use them through APIFlask's ``input``/``output``/``doc`` decorators, so the OpenAPI
document (``/api/openapi.json``), the request validation and the 400s all come from here. Limits
(k, batch size, label length, names...) come from :mod:`simsearch.limits`, shared with the CLI.
"""

from simsearch.web.schemas.analysis import ClusterLabelled, ClusterNamed, Clusters, Comparison, Evaluation, Map  # noqa: F401
from simsearch.web.schemas.requests import *  # noqa: F401,F403
from simsearch.web.schemas.responses import *  # noqa: F401,F403
from simsearch.web.schemas.vectors import *  # noqa: F401,F403
from simsearch.web.schemas.duplicates import *  # noqa: F401,F403
from simsearch.web.schemas.examples import *  # noqa: F401,F403
from simsearch.web.schemas.exports import *  # noqa: F401,F403
from simsearch.web.schemas.reembed import *  # noqa: F401,F403
