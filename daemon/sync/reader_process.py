"""Reader processes started by `daemon.sync.readers.ReaderPool`; the arguments are their pipes' descriptors.

Each reader's setup is read before the reading code is imported: with the policy's free-mail
domains it is larger than a pipe holds, and the writer, which waits until it is read, is meant to
read a source itself while the readers import.
"""

import gc
import sys
from multiprocessing.connection import Connection

if __name__ == "__main__":
    pipes = [(Connection(int(task), writable=False), Connection(int(event), readable=False))
             for task, event in zip(sys.argv[1::2], sys.argv[2::2], strict=True)]
    setups = [tasks.recv_bytes() for tasks, _ in pipes]

    from daemon.sync.readers import serve

    gc.freeze()
    serve(pipes, setups)
