/*
 * kuala_test.h: what every check-based unit test shares.
 */
#ifndef KUALA_TEST_H
#define KUALA_TEST_H

#include <check.h>
#include <stdlib.h>

/* Run every test of `s` and turn the outcome into an exit status. */
static inline int kuala_test_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif /* KUALA_TEST_H */
