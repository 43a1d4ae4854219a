def test_sandbox_isolates_etc(sandbox):
    sandbox.run("echo hello > /etc/sr-sandbox-probe", check=True)
    assert sandbox.read("/etc/sr-sandbox-probe") == "hello\n"
    import os
    assert not os.path.exists("/etc/sr-sandbox-probe")


def test_deployment_and_template_in_sandbox(host):
    host.write("""
        [buildout]
        extends = {base}
        parts = app app-config

        [app]
        recipe = system_recipes:deployment
        user = shopapp

        [app-config]
        recipe = system_recipes:template
        path = ${app:etc-directory}/app.ini
        text = port = {{ port }}
        port = 8080
        group = ${app:group}
        mode = 0640
    """)
    result = host.buildout()
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.read("/etc/app/app.ini") == "port = 8080\n"
