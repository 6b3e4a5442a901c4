#!/bin/bash
# /usr/lib/conker-test/agent (test variant only): answers the host's checks on the
# virtio-serial port org.conker.test. One command per line; the answer's lines end with
# ".end RC". Only these commands exist:
#   ping          "pong"
#   drop-caches   sync, then drop the page, dentry and inode caches
#   storage       the device, type and dm table of the filesystem holding /var/lib/conker
#   digests       "SHA256 PATH" for every regular file under /var/lib/conker, or
#                 "error PATH MESSAGE" when it (or a directory) cannot be read, then
#                 "files N errors M"
#   volume-put PID TEXT   writes TEXT ([A-Za-z0-9-]) to conker-vm-test.txt in the /data volume
#                 of the container whose process is PID (through /proc/PID/root), then sync
#   kill PID      kills that container process and drops the caches before its shim restarts
#                 it (the shim, its parent, is stopped meanwhile), so the restart reads the
#                 binary from the disk again, not from the page cache
#   procs         every process: pid, state and command line (to see what hangs)
#   journal       the journal of conkerd, the state disk and the setup units, the kernel's,
#                 and the containers' shim logs
set -u
port=/dev/virtio-ports/org.conker.test
state=/var/lib/conker
until [ -e "$port" ]; do sleep 1; done
exec 3<>"$port"

digests() {
  local n=0 bad=0 f out line err=/run/conker-test-agent.find-errors
  while IFS= read -r -d '' f; do
    n=$((n + 1))
    if out=$(sha256sum <"$f" 2>&1); then
      echo "${out%% *} $f"
    else
      bad=$((bad + 1))
      echo "error $f ${out//$'\n'/ }"
    fi
  done < <(find "$state" -xdev -type f -print0 2>"$err")
  # A directory that cannot be read: find says "find: 'PATH': MESSAGE".
  while IFS= read -r line; do
    bad=$((bad + 1))
    if [[ $line =~ ^find:\ \'(.*)\':\ (.*)$ ]]; then
      echo "error ${BASH_REMATCH[1]} find: ${BASH_REMATCH[2]}"
    else
      echo "error $state $line"
    fi
  done <"$err"
  echo "files $n errors $bad"
}

while :; do
  if ! IFS= read -r cmd <&3; then
    sleep 1
    continue
  fi
  {
    case "$cmd" in
      ping) echo pong ;;
      drop-caches) sync && echo 3 >/proc/sys/vm/drop_caches ;;
      storage)
        findmnt -n -o SOURCE,FSTYPE --target "$state"
        dmsetup table 2>/dev/null
        ;;
      digests) digests ;;
      volume-put\ *)
        read -r _ pid text <<<"$cmd"
        [[ $pid =~ ^[0-9]+$ && $text =~ ^[A-Za-z0-9-]+$ ]] &&
          printf '%s\n' "$text" >"/proc/$pid/root/data/conker-vm-test.txt" && sync
        ;;
      kill\ *)
        read -r _ pid <<<"$cmd"
        [[ $pid =~ ^[0-9]+$ ]] && shim=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status") &&
          kill -STOP "$shim" && kill -KILL "$pid" && {
          while [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
            sleep 0.1
          done
          sync && echo 3 >/proc/sys/vm/drop_caches
          kill -CONT "$shim"
        }
        ;;
      procs)
        for p in /proc/[0-9]*; do
          echo "${p#/proc/} $(awk '{print $3}' "$p/stat" 2>/dev/null) $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
        done
        ;;
      journal)
        journalctl -b --no-pager -o cat -u conkerd.service -u conker-statedisk.service \
          -u conker-test-setup.service | tail -n 300
        journalctl -b --no-pager -o cat -k | tail -n 60
        tail -n 40 /run/conker/shims/*/shim.log 2>/dev/null
        ;;
      *) echo "unknown command" ; false ;;
    esac
    echo ".end $?"
  } >&3 2>&1
done
