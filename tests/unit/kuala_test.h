/*
 * kuala_test.h: what every check-based unit test shares.
 *
 * Teardown that survives a failed assertion: the suites run with
 * CK_FORK=no (one process, so ASan and LeakSanitizer see everything), where
 * a failed ck_assert longjmps out of the test and skips the code after it.
 * A test that owns resources registers their release with
 * kuala_test_defer(); the registered functions run, last registered first,
 * after every test of a TCase made by kuala_test_tcase() (a checked
 * fixture, which check runs whether the test passed or not), and once more
 * at the end of kuala_test_run() for TCases made otherwise. Resources a
 * deferred function releases must not live on the test function's stack
 * (that frame is gone after a failed assertion): use statics or the heap.
 *
 * When a test failed anyway, kuala_test_run() ends the process with
 * _exit() so LeakSanitizer does not add what the aborted test still held
 * to the report of the failure itself; a suite that passes keeps the full
 * leak check at exit.
 */
#ifndef KUALA_TEST_H
#define KUALA_TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef void (*kuala_test_cleanup_fn)(void *arg);

typedef struct {
  kuala_test_cleanup_fn fn;
  void *arg;
} kuala_test_deferred_t;

enum { KUALA_TEST_MAX_DEFERRED = 64 };

static kuala_test_deferred_t kuala_test_deferred[KUALA_TEST_MAX_DEFERRED];
static int kuala_test_ndeferred;

/* Run `fn(arg)` after the current test, whether it passes or fails. */
static inline void kuala_test_defer(kuala_test_cleanup_fn fn, void *arg)
{
  ck_assert_msg(kuala_test_ndeferred < KUALA_TEST_MAX_DEFERRED, "too many deferred cleanups");
  kuala_test_deferred[kuala_test_ndeferred].fn = fn;
  kuala_test_deferred[kuala_test_ndeferred].arg = arg;
  kuala_test_ndeferred++;
}

/* Run (and forget) every deferred cleanup, last registered first. A test
 * that releases its resources itself calls this at its end. */
static inline void kuala_test_cleanup(void)
{
  while (kuala_test_ndeferred > 0) {
    kuala_test_deferred_t d = kuala_test_deferred[--kuala_test_ndeferred];
    d.fn(d.arg);
  }
}

/* A TCase whose tests always get their deferred cleanups run. */
static inline TCase *kuala_test_tcase(const char *name)
{
  TCase *tc = tcase_create(name);
  tcase_add_checked_fixture(tc, NULL, kuala_test_cleanup);
  return tc;
}

/* Run every test of `s` and turn the outcome into an exit status. */
static inline int kuala_test_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  kuala_test_cleanup();
  if (failed) {
    fflush(stdout);
    fflush(stderr);
    _exit(EXIT_FAILURE); /* no leak report for what the failed tests abandoned */
  }
  return EXIT_SUCCESS;
}

#endif /* KUALA_TEST_H */
