/* Growing arrays (vec.h). */
#include "vec.h"

#include <stdint.h>
#include <stdlib.h>

void *
cpar_vec_grow(void *v, size_t *cap, size_t need, size_t size, size_t first)
{
    size_t ncap = *cap ? *cap : (first ? first : 1);
    void *nv;
    if (need <= *cap)
        return v;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return NULL;
        ncap *= 2;
    }
    if (size != 0 && ncap > SIZE_MAX / size)
        return NULL;
    nv = realloc(v, ncap * size);
    if (nv == NULL)
        return NULL;
    *cap = ncap;
    return nv;
}
