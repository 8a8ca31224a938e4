import sys

from chassis.service import main
from payment.app import DEFINITION

sys.exit(main(DEFINITION))
