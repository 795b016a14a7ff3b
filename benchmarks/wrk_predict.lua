-- wrk script: POST the image file $PNG (default img.png) to /predict as multipart field "file", the way
-- curl -F file=@img.png sends it. Used by benchmarks/wrk_serve.py; by hand:
--   PNG=seven.png wrk -t1 -c16 -d15s --latency -s benchmarks/wrk_predict.lua http://127.0.0.1:8000/predict
local path = os.getenv("PNG") or "img.png"
local f = assert(io.open(path, "rb"), "cannot open " .. path .. " (set PNG=path/to/image.png)")
local image = f:read("*all")
f:close()
local boundary = "----cnnlab-wrk-7d1f2e"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n"
  .. 'Content-Disposition: form-data; name="file"; filename="' .. path:match("[^/]*$") .. '"\r\n'
  .. "Content-Type: image/png\r\n\r\n" .. image .. "\r\n--" .. boundary .. "--\r\n"
-- wrk reports answers other than 2xx/3xx as "Non-2xx or 3xx responses"; wrk_serve.py counts them as errors.

