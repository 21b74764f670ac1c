// CBLAS: OpenBLAS's C interface (Debian libopenblas-dev; include path from pkg-config "openblas").
#include <cblas.h>
// OpenBLAS's pthread server: stops its worker threads (exported; its fork handler uses it). The
// next threaded call starts them again (exec_blas's lazy re-init).
int blas_thread_shutdown_(void);
