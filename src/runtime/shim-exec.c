/* shim-exec.h: the double fork that detaches a conker-shim from conkerd. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim-exec.h"

pid_t shim_exec_detached(char *const *argv, int out_fd, int fd3)
{
        int status;
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                sigset_t none;
                int nullfd;

                if (setsid() < 0)
                        _exit(1);
                pid = fork();
                if (pid != 0)
                        _exit(pid < 0 ? 1 : 0);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (out_fd < 0)
                        out_fd = nullfd;
                if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0 ||
                    dup2(fd3, 3) < 0 || chdir("/") < 0)
                        _exit(1);
                if (fd3 == 3 && fcntl(3, F_SETFD, 0) < 0) /* dup2 onto itself keeps FD_CLOEXEC */
                        _exit(1);
                execv(argv[0], argv);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        /* Its setsid() or second fork failed: no shim was started. */
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EAGAIN;
        return pid; /* setsid() made it the id of the shim's group */
}
