#include "interrupt.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TEMP_SLOTS 64
#define TEMP_PATH 4200

static volatile sig_atomic_t caught;
static volatile sig_atomic_t temp_live[TEMP_SLOTS];
static char temp_path[TEMP_SLOTS][TEMP_PATH];

static void say(const char *s)
{
    ssize_t ignored = write(STDERR_FILENO, s, strlen(s));
    (void)ignored;
}

/* Only async-signal-safe calls: write, unlink, _exit. */
static void on_signal(int sig)
{
    if (!caught) {
        caught = sig;
        say("\nbench: interrupted: finishing the point in flight, then writing the reports with the rest "
            "marked interrupted (signal again to stop at once)\n");
        return;
    }
    for (int i = 0; i < TEMP_SLOTS; i++)
        if (temp_live[i]) unlink(temp_path[i]);
    say("\nbench: interrupted again: stopped at once; reports not written\n");
    _exit(128 + caught);
}

void interrupt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;   /* reports go on being written after the first signal */
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int interrupt_signal(void)
{
    return caught;
}

int interrupt_exit_status(void)
{
    return caught ? 128 + caught : 0;
}

const char *interrupt_reason(void)
{
    return caught == SIGTERM ? "interrupted by SIGTERM before this point ran"
                             : "interrupted by SIGINT before this point ran";
}

int interrupt_remember_temp(const char *path)
{
    if (strlen(path) >= TEMP_PATH) return -1;
    for (int i = 0; i < TEMP_SLOTS; i++)
        if (!temp_live[i]) {
            memcpy(temp_path[i], path, strlen(path) + 1);
            temp_live[i] = 1;   /* after the copy: the handler never sees half a path */
            return i;
        }
    return -1;
}

void interrupt_forget_temp(int slot)
{
    if (slot >= 0 && slot < TEMP_SLOTS) temp_live[slot] = 0;
}
