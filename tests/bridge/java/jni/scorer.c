/* The native half of the JNI test models: one shared library, built by the tests with gcc (twice, with
 * -DSCORER_VALUE=1.0 and 2.0, so that two versions of a model answer differently), loaded either through
 * System.loadLibrary("scorer") from a bundle's lib/native/<os>-<arch>/ or extracted from a JAR by the
 * library code itself (com.acme.nat) and loaded with System.load. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <jni.h>

#ifndef SCORER_VALUE
#define SCORER_VALUE 1.0
#endif

static jdouble score(jdouble x) { return SCORER_VALUE + x; }

/* The file this copy of the library was loaded from. */
static jstring path(JNIEnv *env) {
    Dl_info info;
    if (!dladdr((void *)&score, &info) || info.dli_fname == NULL) return (*env)->NewStringUTF(env, "?");
    return (*env)->NewStringUTF(env, info.dli_fname);
}

JNIEXPORT jdouble JNICALL Java_org_modelrunner_tests_jni_JniScorer_nativeScore(JNIEnv *env, jclass c, jdouble x) {
    return score(x);
}

JNIEXPORT jstring JNICALL Java_org_modelrunner_tests_jni_JniScorer_nativePath(JNIEnv *env, jclass c) {
    return path(env);
}

JNIEXPORT jdouble JNICALL Java_com_acme_nat_NativeLib_score(JNIEnv *env, jclass c, jdouble x) { return score(x); }

JNIEXPORT jstring JNICALL Java_com_acme_nat_NativeLib_path(JNIEnv *env, jclass c) { return path(env); }

JNIEXPORT jdouble JNICALL Java_com_acme_nat_FixedPathLib_score(JNIEnv *env, jclass c, jdouble x) { return score(x); }

JNIEXPORT jstring JNICALL Java_com_acme_nat_FixedPathLib_path(JNIEnv *env, jclass c) { return path(env); }
