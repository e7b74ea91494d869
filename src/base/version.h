/*
 * version.h — what this binary is: the release (the VERSION file) and the git
 * commit it was built from ("unknown" outside a git checkout). Both are set by
 * the Makefile on this one object, so a new commit rebuilds one file.
 */
#ifndef LK_VERSION_H
#define LK_VERSION_H

/* Static strings, printable ASCII only. */
const char *lk_version(void);
const char *lk_version_commit(void);

#endif
