"""A reader process started by `daemon.readers.ReaderPool`; its stdin and stdout are the pipes to the writer."""

from daemon.readers import serve_stdio

if __name__ == "__main__":
    serve_stdio()
