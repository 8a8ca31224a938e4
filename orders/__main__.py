import sys

from chassis.service import main
from gateway.server import IN_PROCESS
from orders.app import DEFINITION

sys.exit(main(DEFINITION, http=IN_PROCESS))
