-- wrk script: POST /api/v1/messages to the Sonar simulator (JSON body, X-Token header).
-- Used by run.sh; one fixed request keeps wrk's own CPU use low on a shared 2-core machine.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Token"] = os.getenv("SIM_TOKEN") or "sim-token"
wrk.body = '{"to":"+13105550147","text":"Hi Maya, your bike is ready for pickup."}'

-- wrk reports non-2xx answers itself ("Non-2xx or 3xx responses"); socket errors too.
