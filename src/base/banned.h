/*
 * banned.h — functions latchkey must not call. Every .c file includes it after
 * all other headers, so a use below is a compile error with a clear name.
 * Use snprintf with a truncation check, lk_parse_i64(), gmtime_r() and the CSPRNG.
 */
#ifndef LK_BANNED_H
#define LK_BANNED_H

#define LK_BANNED(func) sorry_##func##_is_banned_in_latchkey

#undef strcpy
#define strcpy(x, y) LK_BANNED(strcpy)
#undef strcat
#define strcat(x, y) LK_BANNED(strcat)
#undef sprintf
#define sprintf(...) LK_BANNED(sprintf)
#undef strtok
#define strtok(x, y) LK_BANNED(strtok)
#undef atoi
#define atoi(x) LK_BANNED(atoi)
#undef gmtime
#define gmtime(x) LK_BANNED(gmtime)
#undef localtime
#define localtime(x) LK_BANNED(localtime)
#undef rand
#define rand() LK_BANNED(rand)

#endif
