"""Reader processes started by `daemon.sync.readers.ReaderPool`; the arguments are their pipes' descriptors.

The readers' setup is read before the reading code is imported: with the policy's free-mail
domains it is larger than a pipe holds, and the writer, which waits until it is read, is meant to
read a source itself while the readers import. The garbage collector stays off until `serve` has
prepared the readers: start-up makes objects that live as long as the process, and collecting them
over and over doubled the time to build the public suffix tree (0.05 s more of a 0.6 s start here).
"""

import gc
import sys
from multiprocessing.connection import Connection

if __name__ == "__main__":
    gc.disable()
    pipes = [(Connection(int(task), writable=False), Connection(int(event), readable=False))
             for task, event in zip(sys.argv[1::2], sys.argv[2::2], strict=True)]
    setup = pipes[0][0].recv_bytes()

    from daemon.sync.readers import serve

    serve(pipes, setup)
