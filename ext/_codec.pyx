# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""tdsync's hot path: TDengine raw blocks and TMQ raw messages, decoded and encoded in C.

One extension module built from small files per concern (asyncpg's layout): buffer.pyx is
the only place that checks bounds; rawblock.pyx and tmqmsg.pyx work on validated views.
"""

import sys as _sys

from engine.errors import CodecError

if _sys.byteorder != "little":
    raise ImportError("tdsync's codec supports little-endian hosts only")

include "buffer.pyx"
include "rawblock.pyx"
include "tmqmsg.pyx"
include "metamsg.pyx"
