/* Vector and thread helpers shared by the cpu backend's elementwise kernels
 * (cpu_kernels.c), optimiser steps (cpu_optim.c) and own convolution kernels
 * (cpu_dwconv.c, cpu_stem.c, cpu_conv.c): GCC vector extensions
 * over VW floats (AVX-512: 16 lanes, AVX: 8, else 4) and the OpenMP thread
 * index / count (0 / 1 without OpenMP). */
#ifndef DCL_CPU_VEC_H
#define DCL_CPU_VEC_H
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__)
#define VW 16
#elif defined(__AVX__)
#define VW 8
#else
#define VW 4
#endif
typedef float vf __attribute__((vector_size(VW * 4), aligned(4), may_alias));
typedef int32_t vi __attribute__((vector_size(VW * 4), aligned(4), may_alias));

static inline vf vld(const float *p) { return *(const vf *)p; }
static inline void vst(float *p, vf v) { *(vf *)p = v; }
static inline vf vbc(float s) { return (vf){0} + s; }

/* keeps a loaded vector in a register, the operand of every multiply-add
 * that uses it (not a memory operand of each, whose loads would bound the
 * loop) */
#if defined(__x86_64__) || defined(__i386__)
#define VREG(v) __asm__("" : "+x"(v))
#else
#define VREG(v) ((void)0)
#endif

#ifdef _OPENMP
static inline int thr_id(void) { return omp_get_thread_num(); }
static inline int thr_n(void) { return omp_get_num_threads(); }
#else
static inline int thr_id(void) { return 0; }
static inline int thr_n(void) { return 1; }
#endif

#endif
