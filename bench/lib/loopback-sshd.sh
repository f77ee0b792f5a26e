# Sourced by the benchmarks that run over SSH (apply.sh, peers.sh).
#
# start_loopback_sshd DIR HOSTS [ACCOUNT]: starts an sshd on 127.0.0.1 (a free port) with keys
# of its own in DIR/ssh, and writes DIR/ssh/config, an ssh config naming HOSTS aliases
# h1..hHOSTS for it; sets `port` and `sshd_pid` (the caller stops it). MaxStartups and
# MaxSessions are far above any limit measured, so that sshd is not the bottleneck. The host
# key is learnt once here, so that no timed run pays for it. The aliases log in as ACCOUNT
# (default: the current user), which must exist and not be locked. Needs root and
# openssh-server.
start_loopback_sshd() {
    local dir=$1 hosts=$2 account=${3:-$(id -un)} i
    id "$account" >/dev/null 2>&1 ||
        die "no account $account (make one: useradd -m -s /bin/bash $account && usermod -p '*' $account)"
    command -v /usr/sbin/sshd >/dev/null || die "sshd is needed: apt-get install -y openssh-server"
    mkdir -p /run/sshd "$dir/ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh/client_key"
    cp "$dir/ssh/client_key.pub" "$dir/ssh/authorized_keys"
    # sshd reads the key list as the account: another account needs to reach it.
    [[ $account == "$(id -un)" ]] || chmod go+rx "$dir" "$dir/ssh"
    chmod go+r "$dir/ssh/authorized_keys"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$dir/ssh/sshd_config" <<CONFIG
ListenAddress 127.0.0.1
Port $port
HostKey $dir/ssh/host_key
AuthorizedKeysFile $dir/ssh/authorized_keys
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
MaxStartups 2000
MaxSessions 1000
LogLevel ERROR
CONFIG
    /usr/sbin/sshd -D -e -f "$dir/ssh/sshd_config" 2>"$dir/ssh/sshd.log" &
    sshd_pid=$!
    for _ in $(seq 50); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    {
        for ((i = 1; i <= hosts; i++)); do
            printf 'Host h%d\n' "$i"
        done
        printf 'Host *\n  HostName 127.0.0.1\n  Port %d\n  User %s\n  IdentityFile %s\n' \
            "$port" "$account" "$dir/ssh/client_key"
        printf '  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking accept-new\n' \
            "$dir/ssh/known_hosts"
        printf '  LogLevel ERROR\n'
    } >"$dir/ssh/config"
    ssh -q -F "$dir/ssh/config" h1 true
}
