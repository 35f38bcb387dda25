"""Which user a container's process runs as: the pod user boundary.

A pod's command is whatever its manifest says, so it must not run with the agent's
privileges: it could read the agent's credentials, the control plane's files, or signal
the agent. When the agent runs as root, pods therefore run as an unprivileged *pod
user* (``nobody`` unless ``--pod-user`` names another), and a pod's
``securityContext.runAsUser`` / ``runAsGroup`` / ``runAsNonRoot`` are honoured with
Kubernetes semantics (container fields override the pod's). An agent that is not root
cannot change user: its pods run as the agent's own user, and a ``runAsUser`` (or
``runAsGroup``) other than the agent's uid (gid) is refused rather than silently ignored,
since a pod that asked for another identity must not run with one it did not ask for.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

#: the default pod user of an agent that runs as root
DEFAULT_POD_USER = "nobody"


class IdentityError(Exception):
    """A container's securityContext cannot be honoured: it must not start."""


@dataclass(frozen=True, slots=True)
class PodUser:
    """A uid and gid a container's process runs as."""

    uid: int
    gid: int

    def __str__(self) -> str:
        try:
            name = pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid {self.uid} gid {self.gid}"
        return f"{name} (uid {self.uid} gid {self.gid})"


def agent_user() -> PodUser:
    return PodUser(os.geteuid(), os.getegid())


def _uid(text: str) -> tuple[int, int | None]:
    """A user name or number → (uid, its primary gid when the account exists)."""
    try:
        entry = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except KeyError:
        if text.isdigit():
            return int(text), None
        raise ValueError(f"--pod-user: no user named {text!r} on this host") from None
    return entry.pw_uid, entry.pw_gid


def _gid(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValueError(f"--pod-user: no group named {text!r} on this host") from None


def parse_pod_user(text: str | None) -> PodUser:
    """``USER[:GROUP]`` (names or numbers) → the pod user; None → the default.

    The default is ``nobody`` (with its primary group) for a root agent and the agent's
    own user otherwise. A non-root agent cannot run pods as anyone else, so naming
    another user is an error at start, not a surprise at the first pod.
    """
    me = agent_user()
    if text is None or not text.strip():
        if me.uid != 0:
            return me
        text = DEFAULT_POD_USER
    user, _, group = text.strip().partition(":")
    if not user:
        raise ValueError(f"--pod-user: expected USER[:GROUP], got {text!r}")
    uid, primary = _uid(user)
    gid = _gid(group) if group else primary if primary is not None else uid
    chosen = PodUser(uid, gid)
    if me.uid != 0 and chosen != me:
        raise ValueError(f"--pod-user {text}: the agent runs as {me}, not root, so its "
                         "pods can only run as that same user")
    return chosen


@dataclass(frozen=True, slots=True)
class SecurityContext:
    """The identity fields of a pod or container securityContext (None: not set)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None

    def over(self, pod: SecurityContext) -> SecurityContext:
        """This (container) context with the pod's fields as defaults, as Kubernetes
        merges them."""
        return SecurityContext(
            self.run_as_user if self.run_as_user is not None else pod.run_as_user,
            self.run_as_group if self.run_as_group is not None else pod.run_as_group,
            self.run_as_non_root if self.run_as_non_root is not None
            else pod.run_as_non_root)


def container_user(default: PodUser, context: SecurityContext, *, pod: str,
                   container: str) -> PodUser:
    """The identity a container runs as, or IdentityError saying why it cannot start."""
    uid = context.run_as_user if context.run_as_user is not None else default.uid
    if context.run_as_group is not None:
        gid = context.run_as_group
    elif context.run_as_user is not None and context.run_as_user != default.uid:
        try:
            gid = pwd.getpwuid(context.run_as_user).pw_gid
        except KeyError:
            gid = default.gid  # an unknown uid gets the pod user's group, never root's
    else:
        gid = default.gid
    if context.run_as_non_root and uid == 0:
        if context.run_as_user is None:
            raise IdentityError(f"container has runAsNonRoot and image will run as root "
                                f"(pod: {pod!r}, container: {container}): the pod user "
                                f"is root (see --pod-user)")
        raise IdentityError(f"container's runAsUser breaks non-root policy "
                            f"(pod: {pod!r}, container: {container})")
    chosen = PodUser(uid, gid)
    me = agent_user()
    if me.uid != 0 and chosen != me:
        asked = "runAsUser" if uid != me.uid else "runAsGroup"
        raise IdentityError(
            f"{asked} cannot be honoured (uid {uid} gid {gid} asked): the agent runs as "
            f"{me}, not root, and can only run pods as that same user")
    return chosen


def spawn_options(user: PodUser, cwd: str | os.PathLike[str] | None) -> dict[str, object]:
    """Keyword arguments for `subprocess.Popen` that start a process as ``user`` in
    ``cwd``. Popen changes directory before it drops privileges, so a pod's directory
    under the agent's private state directory is still its working directory. The
    agent's supplementary groups are dropped too (root's would otherwise be kept)."""
    options: dict[str, object] = {"cwd": cwd}
    if user != agent_user():
        options.update(user=user.uid, group=user.gid, extra_groups=[])
    return options


def make_home(path: os.PathLike[str], user: PodUser) -> None:
    """Create a pod's own directory, 0700 and owned by the pod's user.

    Its parent is the agent's (root-owned) pods directory, so the pod cannot swap the
    directory for a link; an existing one (an adopted pod's) is kept as it is.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    if user != agent_user():
        os.chown(path, user.uid, user.gid)
