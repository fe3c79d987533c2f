"""`python -m agi [--host H] [--port P]`: the FastAGI server with the layered settings."""
from agi.cli import serve

if __name__ == "__main__":
    serve(prog_name="python -m agi")
