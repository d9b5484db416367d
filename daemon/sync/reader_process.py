"""Reader processes started by `daemon.sync.readers.ReaderPool`; the arguments are their pipes' descriptors."""

import sys

from daemon.sync.readers import serve

if __name__ == "__main__":
    serve([int(fd) for fd in sys.argv[1:]])
