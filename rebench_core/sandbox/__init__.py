"""Where agent code runs: an unprivileged identity in its own namespaces, tools with timeouts,
safe file handling, and cleanup that survives the harness.

`identity` (who the agent is and what it sees, per mode), `view` (the namespace's file system),
`shell` (the agent's bash and python tools), `scoring` (running agent code for scorers), `files`
(file operations on the agent's behalf), `keeper` (cleanup after a harness dies). docs/security.md
describes what each mode protects against.
"""

from .files import (IoDir, chown_tree, foreign_directory_problem, hand_back, make_private, read_agent_file,
                    write_agent_file)
from .identity import (BASE_PATH, LOCK_DIR, PASSTHROUGH_ENV, SETPRIV, USER_PREFIX, AgentIdentity, Isolation,
                       agent_env, lock_user, namespace_problem, reap_user, run_directory_problem)
from .keeper import kill_user_processes, move_tree
from .paths import agent_can_reach, agent_python_problem, first_closed_parent
from .processes import kill_sessions
from .scoring import AgentProcessResult, agent_tempdir, current_identity, run_as_agent, using_identity
from .shell import Sandbox

__all__ = [
    "BASE_PATH", "LOCK_DIR", "PASSTHROUGH_ENV", "SETPRIV", "USER_PREFIX", "AgentIdentity", "AgentProcessResult",
    "Isolation", "IoDir", "Sandbox", "agent_can_reach", "agent_env", "agent_python_problem", "agent_tempdir",
    "chown_tree", "current_identity", "first_closed_parent", "foreign_directory_problem", "hand_back",
    "kill_sessions", "kill_user_processes", "lock_user", "make_private", "namespace_problem", "read_agent_file",
    "move_tree", "reap_user", "run_as_agent", "run_directory_problem", "using_identity", "write_agent_file",
]
