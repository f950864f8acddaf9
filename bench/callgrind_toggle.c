/* Turns callgrind's event collection on and off from inside a process (Deno FFI): the bench then
 * counts the instructions of its measured loop only, not start-up, set-up or warm-up. Outside
 * valgrind the call does nothing. Build: gcc -O2 -shared -fPIC -o callgrind_toggle.so this file */
#include <valgrind/callgrind.h>

void callgrind_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
