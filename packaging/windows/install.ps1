<#
.SYNOPSIS
Installs or upgrades the OX Broker agent as the Windows service "oxbroker".

.DESCRIPTION
Run it from an elevated PowerShell ("Run as administrator") in the folder the
zip was extracted to. It:
  1. stops the service if it runs (an upgrade) and copies oxbroker.exe to
     %ProgramFiles%\OXBroker;
  2. makes %ProgramData%\OXBroker, where the config and token files live,
     readable and writable by Administrators and SYSTEM only (the service runs
     as LocalSystem), and puts the config there: the one given with -Config,
     else the one already there, else the commented example;
  3. validates the config. The example is not a working config: the script
     then stops and says what to do. Fill in the config and run the script
     again;
  4. registers the service ("oxbroker service install": automatic start,
     restarted after a failure, logs in the Application event log) unless it
     is registered already, and starts it.

.PARAMETER Config
A config file to install as %ProgramData%\OXBroker\config.yaml, replacing the
one there.

.PARAMETER NoStart
Register the service but do not start it.

.EXAMPLE
Expand-Archive oxbroker_1.2.3_windows_amd64.zip -DestinationPath oxbroker
cd oxbroker
powershell -ExecutionPolicy Bypass -File .\install.ps1 -Config C:\path\to\config.yaml
#>
[CmdletBinding()]
param(
    [string]$Config,
    [switch]$NoStart
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'install.ps1 changes a system service: run it from an elevated PowerShell ("Run as administrator").'
}

$source  = $PSScriptRoot
$binDir  = Join-Path $env:ProgramFiles 'OXBroker'
$dataDir = Join-Path $env:ProgramData 'OXBroker'
$exe     = Join-Path $binDir 'oxbroker.exe'
$cfg     = Join-Path $dataDir 'config.yaml'

# Invoke-OXBroker runs oxbroker.exe and fails the script when it fails.
function Invoke-OXBroker {
    & $exe @args
    if ($LASTEXITCODE -ne 0) {
        throw "oxbroker.exe $($args -join ' ') failed (exit code $LASTEXITCODE)"
    }
}

# 1. The binary. A running service holds oxbroker.exe open: stop it first.
$service = Get-Service -Name 'oxbroker' -ErrorAction SilentlyContinue
if ($service -and $service.Status -ne 'Stopped') {
    Write-Host 'Stopping the oxbroker service to replace oxbroker.exe'
    Stop-Service -Name 'oxbroker'
    $service.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(60))
}
New-Item -ItemType Directory -Force -Path $binDir | Out-Null
Copy-Item -Path (Join-Path $source 'oxbroker.exe') -Destination $exe -Force
Write-Host "Installed $exe"

# 2. The config folder: Administrators (S-1-5-32-544) and SYSTEM (S-1-5-18)
# only, by SID so that it works in every language; nothing inherited from
# ProgramData, which lets every user read. Files in it inherit the same.
New-Item -ItemType Directory -Force -Path $dataDir | Out-Null
& icacls.exe $dataDir /inheritance:r /grant:r '*S-1-5-32-544:(OI)(CI)F' '*S-1-5-18:(OI)(CI)F' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "icacls $dataDir failed (exit code $LASTEXITCODE)" }
if (Get-ChildItem -Force -Path $dataDir) {
    # Files that were there before (an upgrade) get the folder's ACL.
    & icacls.exe (Join-Path $dataDir '*') /reset /T /C /Q | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "icacls $dataDir\* failed (exit code $LASTEXITCODE)" }
}
Write-Host "$dataDir is readable by Administrators and SYSTEM only"

if ($Config) {
    Copy-Item -Path $Config -Destination $cfg -Force
    Write-Host "Installed $Config as $cfg"
} elseif (-not (Test-Path -Path $cfg)) {
    Copy-Item -Path (Join-Path $source 'config.example.yaml') -Destination $cfg
    Write-Host "Wrote the example config to $cfg"
}

# 3. A service with a config that does not load would only restart in a loop.
& $exe config validate --config $cfg
if ($LASTEXITCODE -ne 0) {
    Write-Host ''
    Write-Host "$cfg is not a working config yet (see above)."
    Write-Host "Edit it (notepad `"$cfg`"): the comments at its top say how. Then check it and run this script again:"
    Write-Host "  & `"$exe`" check"
    Write-Host "  .\install.ps1"
    exit 1
}

# 4. The service. Its registration names $exe and $cfg, which stay the same
# across upgrades, so an upgrade only starts it again.
$service = Get-Service -Name 'oxbroker' -ErrorAction SilentlyContinue
if (-not $service) {
    Invoke-OXBroker service install --config $cfg
}
if ($NoStart) {
    Write-Host "Start it with: & `"$exe`" service start"
} else {
    Invoke-OXBroker service start
    Invoke-OXBroker service status
}
Write-Host 'Logs: Event Viewer > Windows Logs > Application, source "oxbroker"'
