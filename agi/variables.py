"""Channel-variable names and values the AGI scripts set, and the prompts they play.

The dialplan reads these names; keep them here, never as string literals in handlers.
"""

# --- channel variables (set by route_call) -----------------------------------------------------
TAWASUL_DECISION = "TAWASUL_DECISION"        # one of DECISIONS; always set, and set last
TAWASUL_REASON = "TAWASUL_REASON"            # one of the reasons below; always set
TAWASUL_APPOINTMENT = "TAWASUL_APPOINTMENT"  # appointment id (connect / wait only)
TAWASUL_CALLER_NAME = "TAWASUL_CALLER_NAME"  # "<citizen name> <reference>" for the governor's phone
TAWASUL_SLOT_SECONDS = "TAWASUL_SLOT_SECONDS"  # seconds left in the slot, at least 60

# --- read by the server (GET VARIABLE) before any handler runs ---------------------------------
TAWASUL_AGI_SECRET = "TAWASUL_AGI_SECRET"    # a global of extensions.conf: Asterisk's proof that it is Asterisk

# --- the dialplan's bound on the wait for a decision (TIMEOUT(absolute), [tawasul-decide]) -------
DEADLINE = "TIMEOUT(absolute)"
ANSWER_SECONDS = 3         # as provisioning.render.AGI_DEADLINE_SECONDS: a decision comes within this
CODE_PROMPT_SECONDS = 30   # one booking-code prompt and its digits (route_call extends the bound to this)

# --- decisions ---------------------------------------------------------------------------------
CONNECT = "connect"
WAIT = "wait"
DENY = "deny"
DECISIONS = (CONNECT, WAIT, DENY)

# --- reasons -----------------------------------------------------------------------------------
OK = "ok"                          # connect
GOVERNOR_BUSY = "governor_busy"    # wait
UNKNOWN_DEVICE = "unknown_device"  # deny: endpoint is not an enabled centre phone
OUTSIDE_HOURS = "outside_hours"    # deny: not a session day / time, and nothing due here
NO_APPOINTMENT = "no_appointment"  # deny: nothing booked at this centre today
TOO_EARLY = "too_early"            # deny: this centre's next appointment today is not due yet
TOO_LATE = "too_late"              # deny: this centre's appointment today is past its window
BAD_CODE = "bad_code"              # deny: no matching booking code after CODE_TRIES tries
CODE_LOCKED = "code_locked"        # deny: too many wrong codes for this appointment: the desk checks the citizen in
ERROR = "error"                    # deny: the handler failed (database down, bug, ...)

# --- booking-code prompt (GET DATA) -------------------------------------------------------------
PROMPT_ENTER_CODE = "tawasul/enter-code"   # first try: "please key your six-digit booking code"
PROMPT_CODE_RETRY = "tawasul/code-retry"   # later tries: "that code is not right; key it again"
CODE_DIGITS = 6
CODE_TIMEOUT_MS = 10_000
CODE_TRIES = 3
