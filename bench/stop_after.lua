-- wrk script for bench/mem.sh: each thread stops after STOP_AFTER responses (environment, default
-- 1000000); with -t1 that is the run's request count (plus the few already in flight).
local done, limit = 0, tonumber(os.getenv("STOP_AFTER") or "1000000")

function response(status, headers, body)
   done = done + 1
   if done >= limit then
      wrk.thread:stop()
   end
end
