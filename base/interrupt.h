/* SIGINT and SIGTERM end a run cleanly. The first signal is recorded: sweeps ask
 * interrupt_signal() between points, mark the points not run as "interrupted",
 * and still write complete reports; main then exits 128 + the signal (130, 143).
 * A second signal exits at once, after removing every temporary file still
 * registered, so the folder never holds a half-written file. The one piece of
 * global state the signal API forces lives here, behind these functions. */
#ifndef PB_INTERRUPT_H
#define PB_INTERRUPT_H

/* Catch SIGINT and SIGTERM (idempotent). */
void interrupt_install(void);
/* The first signal caught, or 0. */
int interrupt_signal(void);
/* 128 + the signal: the shell's status for a process a signal ended. */
int interrupt_exit_status(void);
/* "interrupted by SIGINT before this point ran": the reason in reports. */
const char *interrupt_reason(void);
/* A temporary file the second signal must remove; returns a slot for
 * interrupt_forget, or -1 if the table is full (the file is then only
 * removed by its writer). */
int interrupt_remember_temp(const char *path);
void interrupt_forget_temp(int slot);
#endif
