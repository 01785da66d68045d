"""`python -m server serve|sql ...`: the server commands without the top-level `flocksql` CLI."""

import click

from server.cli import serve_command, sql_command


@click.group()
def main():
    """FlockSQL server commands."""


main.add_command(serve_command)
main.add_command(sql_command)

if __name__ == "__main__":
    main()
