// libbz2 (Debian: libbz2-dev, which ships no bzip2.pc, so the module map links "bz2" directly).
#include <bzlib.h>
