"""`python -m meshward.samples.idp`: see meshward.samples.idp.server."""

from meshward.samples.idp.server import main

main()
