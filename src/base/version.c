#include "base/version.h"

#include "base/banned.h" /* last: bans unsafe calls below this line */

#ifndef LK_VERSION
#define LK_VERSION "unknown"
#endif
#ifndef LK_COMMIT
#define LK_COMMIT "unknown"
#endif

const char *lk_version(void)
{
    return LK_VERSION;
}

const char *lk_version_commit(void)
{
    return LK_COMMIT;
}
