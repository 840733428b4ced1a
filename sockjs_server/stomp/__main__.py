"""``python -m sockjs_server.stomp``: the ``stomp`` subcommand on its own."""

from .cli import main

main()
