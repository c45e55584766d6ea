/* The one piece of mutable state the error path needs: the last message, per
 * thread, like errno. Reports read it to say why a point failed. */
#include "check.h"

char *pb_last_error(void)
{
    static _Thread_local char message[PB_ERROR_LEN];
    return message;
}
