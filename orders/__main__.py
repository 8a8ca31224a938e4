import sys

from chassis.service import main
from orders.app import DEFINITION

sys.exit(main(DEFINITION))
