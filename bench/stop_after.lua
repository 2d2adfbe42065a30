-- wrk script for bench/mem.sh: the thread stops after STOP_AFTER responses (environment, default
-- 1000000) and creates the file STOP_MARK (if set), so the script can end wrk with SIGINT: wrk
-- itself would sleep for its whole -d. With -t1 that is the run's request count (plus the few
-- already in flight when it stops).
local done, limit = 0, tonumber(os.getenv("STOP_AFTER") or "1000000")
local mark = os.getenv("STOP_MARK")

function response(status, headers, body)
   done = done + 1
   if done == limit then
      if mark then
         local f = io.open(mark, "w")
         if f then
            f:close()
         end
      end
      wrk.thread:stop()
   end
end
