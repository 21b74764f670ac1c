// CMPI: Open MPI's C interface (Debian libopenmpi-dev; include path from pkg-config "ompi-c").
// Swift code does not use it directly (the handles are macros): see CMPIShim.
#include <mpi.h>
