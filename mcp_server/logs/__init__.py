"""The log relay, in six parts:

- `positions`: how far each stream (a pod's `agent` container, a local run's log file) was read,
  so that no line is lost or repeated, whatever happens between two reads;
- `cursor`: those positions as the compact, opaque cursor handed to clients (version 2);
- `follow`: follow streams a backend holds open between calls, one reader thread and one bounded
  buffer per running stream, resumed from the last line after a break;
- `relay`: one read of every selected stream, merged in time order, the floor below which delivered
  streams leave the cursor, and the waiting loop of stream_task_logs; the same for every backend (a
  backend only lists and reads raw streams);
- `results`: what lines mean: the runner's step lines and its `AGENTIC_RESULT: ` line;
- `prefix`: stern-like coloured `[T012] ` prefixes for humans.
"""
