"""volume-manage's command line: adopt existing backend objects and look at them.

    python starter.py manage node1@file#pool source-name=vol-17 --wait
    python starter.py --help

The commands live in volume_manage.cli.
"""

from volume_manage.cli.app import main

if __name__ == "__main__":
    main()
