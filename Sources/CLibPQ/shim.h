#include <libpq-fe.h>

// PG_DIAG_SQLSTATE lives in postgres_ext.h as a character constant macro.
static inline int shoal_pg_diag_sqlstate(void) { return PG_DIAG_SQLSTATE; }
