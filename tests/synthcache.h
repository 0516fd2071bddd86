/* A small synthetic face cache for trainer tests: per "video" a smooth random
 * face-like image with slight motion; fakes replace an ellipse of the face by
 * a re-textured copy (mask = that ellipse), with the aligned real as pair. */
#ifndef DCL_TEST_SYNTHCACHE_H
#define DCL_TEST_SYNTHCACHE_H
#include <stdint.h>
int make_synth_cache(const char *dir, int videos, int frames, int size, uint64_t seed);
#endif
