/* Test helpers: temporary directories, a face picture, synthetic clips and
 * miniature replicas of the published dataset layouts (FaceForensics++ with
 * DFD, Celeb-DF, DFDC, DFDC preview, WildDeepfake, generic folders / CSV).
 *
 * The replicas' contents are fixed; what each one holds (and which defects
 * it carries when asked) is listed beside its builder so tests can assert
 * exact counts. */
#ifndef DCL_TEST_DATAUTIL_H
#define DCL_TEST_DATAUTIL_H
#include <stddef.h>
#include "dcl/core.h"
#include "dcl/video.h"

/* ---- files ---- */
/* Creates a fresh directory $TMPDIR/dcl-<tag>-XXXXXX; 0 ok. */
int du_tmpdir(char *out, size_t n, const char *tag);
/* Removes a directory tree (or a file). */
void du_rmtree(const char *path);
/* mkdir -p; 0 ok. */
int du_mkdirs(const char *path);
/* Creates parent directories and writes the bytes; 0 ok. */
int du_write_bytes(const char *path, const void *data, size_t n);
int du_write_text(const char *path, const char *text);
/* Reads a whole file (malloc'ed, NUL-terminated); NULL on error. */
char *du_read_file(const char *path, size_t *n);
/* snprintf(buf, n, "%s/%s", a, b) */
const char *du_join(char *buf, size_t n, const char *a, const char *b);

/* ---- pictures ---- */
/* Head-and-shoulders portrait (RGB): the astronaut photograph shipped by
 * Debian's python3-skimage when present (see docs/ASSETS.md), else a drawn
 * face-like pattern.  Returns 1 for the photograph, 0 for the drawing, -1 on
 * error.  data is malloc'ed. */
int du_face_photo(dcl_image *out);
/* Where du_face_photo looks for the photograph (the environment variable
 * DCL_TEST_FACE_PHOTO overrides it; set it empty to force the drawing). */
extern const char *du_face_photo_path;

/* Frame t (0..nframes-1) of a synthetic clip: the portrait moves across a
 * textured background and zooms in.  variant 0 is "real"; 1..4 alter the
 * face region (colour shift, blur, ...) as a stand-in for a manipulation.
 * mask != 0 renders the manipulation mask instead (white ellipse over the
 * face, black elsewhere).  dst must hold w*h*3 bytes (dst->w/h/c set). */
void du_render_frame(dcl_image *dst, const dcl_image *face, int t, int nframes, int variant, int mask);

/* Writes an nframes clip of w x h at fps with du_render_frame. */
dcl_status du_write_clip(const char *path, int w, int h, int nframes, double fps, int variant, int mask,
                         const dcl_video_writer_opts *opts);

/* PNG writing (RGB or grey) for frame-sequence replicas; 0 ok. */
int du_write_png(const char *path, const dcl_image *im);

/* PSNR in dB between two images of the same size (inf when identical), over
 * all samples, or over luma (BT.601 Y of RGB) which is what lossy video
 * coding preserves best: 4:2:0 chroma caps RGB PSNR near 30 dB on small,
 * saturated pictures. */
double du_psnr(const dcl_image *a, const dcl_image *b);
double du_psnr_luma(const dcl_image *a, const dcl_image *b);

/* ---- replicas ---- */
typedef struct du_replica_opts {
    int videos;      /* 1: real encoded clips; 0: empty placeholder files (indexing only) */
    int w, h, nframes;
    int defects;     /* add the listed defects */
} du_replica_opts;
/* 96x64, 8 frames, encoded clips, with defects */
du_replica_opts du_replica_defaults(void);

/* FaceForensics++ (+ DFD) under root:
 *  original_sequences/youtube/c23/videos/000..007.mp4             (8 reals)
 *  manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures,FaceShifter}/c23/videos/
 *      TTT_SSS.mp4 for the pairs (000,001) (002,003) (004,005) (006,007), both orders (8 per method)
 *  manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures}/masks/videos/TTT_SSS.mp4
 *  original_sequences/youtube/c40/videos/000.mp4 001.mp4, manipulated_sequences/Deepfakes/c40/videos/000_001.mp4
 *  splits/train.json [["000","001"],["002","003"]]  val.json [["004","005"]]  test.json [["006","007"]]
 *  DFD: original_sequences/actors/c23/videos/01__exit_phone_room.mp4 02__exit_phone_room.mp4 01__kitchen_pan.mp4
 *       manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4
 *                                                     02_01__exit_phone_room__ABCDEFGH.mp4
 *                                                     01_02__kitchen_pan__QWERTYUI.mp4
 *       manipulated_sequences/DeepFakeDetection/masks/videos/01_02__exit_phone_room__YVGY8LOK.mp4
 * defects:
 *  Deepfakes/c23/videos/008_009.mp4      (no original 008, in no split)
 *  Face2Face/c23/videos/notes.txt         (not a video)
 *  FaceSwap/c23/videos/bad_name.mp4       (name is not TTT_SSS)
 *  NeuralTextures/masks/videos/007_006.mp4 removed (mask missing)
 *  DeepFakeDetection/c23/videos/03_01__hallway__ZZZZZZZZ.mp4 (no actor video 03__hallway) */
dcl_status du_make_ffpp(const char *root, const du_replica_opts *o);

/* Celeb-DF (v2 layout) under root:
 *  Celeb-real/id0_0000 id0_0001 id1_0000 id2_0000.mp4, YouTube-real/00000 00001 00170.mp4,
 *  Celeb-synthesis/id0_id1_0000 id0_id2_0001 id1_id0_0000 id2_id1_0000.mp4
 *  List_of_testing_videos.txt: 1 YouTube-real/00170.mp4, 1 Celeb-real/id2_0000.mp4,
 *                              0 Celeb-synthesis/id2_id1_0000.mp4
 * defects: Celeb-synthesis/id3_id0_0000.mp4 (no Celeb-real/id3_0000.mp4); list lines
 *  "0 Celeb-synthesis/id9_id8_0000.mp4" (missing file), "garbage" (unparseable),
 *  "0 Celeb-real/id0_0001.mp4" (label disagrees with folder) */
dcl_status du_make_celebdf(const char *root, const du_replica_opts *o);

/* DFDC under root:
 *  dfdc_train_part_0/{metadata.json, aaaaaaaaaa.mp4 (REAL), bbbbbbbbbb.mp4 cccccccccc.mp4 (FAKE, original aaaaaaaaaa.mp4)}
 *  dfdc_train_part_1/{metadata.json, dddddddddd.mp4 (REAL), eeeeeeeeee.mp4 (FAKE, original dddddddddd.mp4)}
 *  test/labels.csv (filename,label; 1 = fake): testaaaaaa.mp4 0, testbbbbbb.mp4 1; videos in test/videos/
 * defects: part_1 lists ffffffffff.mp4 (missing) and gggggggggg.mp4 (FAKE, original zzzzzzzzzz.mp4 absent);
 *  part_1 holds hhhhhhhhhh.mp4 not in its metadata; dfdc_train_part_2/ has a video but no metadata.json;
 *  labels.csv has a row "testcccccc.mp4,maybe" (bad label) */
dcl_status du_make_dfdc(const char *root, const du_replica_opts *o);

/* DFDC preview under root: dataset.json with
 *  original_videos/1255229/1255229_A_001.mp4 (real, train), original_videos/1224068/1224068_A_001.mp4 (real, test),
 *  method_A/1255229/1255229_1224068_A/1255229_1224068_A_001.mp4 (fake, train),
 *  method_B/1224068/1224068_1255229_B/1224068_1255229_B_001.mp4 (fake, test)
 * defects: method_A/9999999/9999999_1_A/9999999_1_A_001.mp4 listed but missing; an entry with
 *  "label": "unknown" */
dcl_status du_make_dfdcp(const char *root, const du_replica_opts *o);

/* WildDeepfake (archives unpacked in place) under root:
 *  real_train/0/0/{10,11,12}.png  real_train/0/1/{5,6}.png  real_train/1/0/{1,2,3}.png
 *  fake_train/0/0/{7,8,9}.png     real_test/0/0/{0,1}.png   fake_test/0/0/{3,4}.png fake_test/0/1/{2}.png
 *  (PNG face crops, 64x64)
 * defects: fake_test/5.tar.gz not unpacked; real_test/0/2/ is empty */
dcl_status du_make_wild(const char *root, const du_replica_opts *o);

/* Generic folders under root:
 *  real/r1.mp4 real/sub/r2.png fake/f1.mp4 fake/f2.png fake/train/f3.png
 *  list.csv: header path,label,split,video with rows real/r1.mp4,0,train,r1 ; fake/f1.mp4,1,test,f1 ;
 *            real/sub/r2.png,real,val,r2
 * defects: real/readme.txt (not media); list.csv rows "fake/missing.mp4,1,test,m" (missing) and
 *  "fake/f2.png,2,test,x" (bad label) */
dcl_status du_make_generic(const char *root, const du_replica_opts *o);

#endif
