# Interface of engine._codec (sources in ext/): lets other Cython modules cimport the codec.
include "buffer.pxd"
include "rawblock.pxd"
include "tmqmsg.pxd"
