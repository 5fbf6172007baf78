"""The configuration text the sandbox writes: the nginx site and main config, the port squatter."""

from __future__ import annotations

# --------------------------------------------------------------------------------------------------------
# configuration text
# --------------------------------------------------------------------------------------------------------

_SITE_TEMPLATE = """\
# {site_file}
# The seed story's site (websocket-troubleshooting-guide), on 127.0.0.1 only.
server {{
    listen 127.0.0.1:{http_port};
    server_name {server_name};

    client_max_body_size 25m;

{ws_static}    location / {{
        proxy_pass http://127.0.0.1:{app_port};
{upgrade}
        # Forwarding headers
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Port $server_port;

        # No buffering (real-time traffic)
        {buffering} off;

        # Keep WebSocket connections open
        proxy_read_timeout 86400;
        proxy_send_timeout 86400;
    }}
}}
{extra}"""

# wt-nginxrt: a default_server that answers 404 in front of the app's block, whose server_name the public
# host (127.0.0.1) does not match: nginx never picks the block that proxies to the app.
_WRONG_SERVER_BLOCK = """\
server {{
    listen 127.0.0.1:{http_port} default_server;
    server_name catch-all.invalid;
    return 404;
}}
"""

# wt-nginxrt: a static location for the WebSocket path (nginx looks for a file, answers 404 itself).
_WS_STATIC_LOCATION = """\
    location /ws {{
        root {nginx_dir}/html;
    }}

"""

# A12: a WebSocket location whose proxy_pass has a URI part ("/"): nginx replaces the matched prefix, so the app
# gets `/` for `/ws`. Everything else a WebSocket needs is there (the upgrade headers, the timeouts).
_WS_REWRITE_LOCATION = """\
    location /ws {{
        proxy_pass http://127.0.0.1:{app_port}/;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection 'upgrade';
        proxy_buffering off;
        proxy_read_timeout 86400;
    }}

"""

_UPGRADE_LINES = """\
        proxy_http_version 1.1;

        # WebSocket upgrade headers
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection 'upgrade';
        proxy_cache_bypass $http_upgrade;
"""

# The same block minus proxy_http_version / Upgrade / Connection (no comment hinting at it: a grep-based
# check must not be fooled into a pass or a fail by our own wording).
_NO_UPGRADE_LINES = """\
        proxy_cache_bypass $http_upgrade;
"""

_MAIN_CONF_TEMPLATE = """\
# Main nginx.conf of the wscheck sandbox. nginx runs as {user} (not root), so everything it writes is in
# {nginx_dir}; the site itself is in sites-enabled/, as on Debian.
worker_processes 1;
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/error.log notice;

# Old workers holding WebSocket connections would otherwise delay a reload's takeover for a day.
worker_shutdown_timeout 3s;

events {{
    worker_connections {worker_connections};
}}

http {{
{mime}    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    server_tokens on;

    access_log {nginx_dir}/access.log;

    client_body_temp_path {nginx_dir}/tmp/client_body;
    proxy_temp_path {nginx_dir}/tmp/proxy;
    fastcgi_temp_path {nginx_dir}/tmp/fastcgi;
    uwsgi_temp_path {nginx_dir}/tmp/uwsgi;
    scgi_temp_path {nginx_dir}/tmp/scgi;

    include {nginx_dir}/sites-enabled/*;
}}
"""

_SQUATTER_CODE = """\
import socket, sys
# wscheck sandbox "port-conflict": a stray server holding the app port. It accepts and hangs up.
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the app's closed connections may be in TIME_WAIT
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.close()
"""

