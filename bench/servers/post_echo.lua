-- wrk script for the JSON POST echo scenario: POST /echo with a small JSON document,
-- then the same machine-readable summary as wrk_report.lua (loaded from beside this file).

wrk.method = "POST"
wrk.path = "/echo"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"id":12345,"name":"sansnet","tags":["http","bench","echo"],"active":true,"score":9.5}'

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_report.lua")
