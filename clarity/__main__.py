"""python -m clarity"""

from clarity.cli import main

main()
