"""Drives `ferry up --demo` with oVirt's own Python SDK (ovirt-engine-sdk-python),
as an oVirt user's script would: sign in, find the disk and the domain by name,
move a running VM's disk, follow it to the end, read the job by correlation id,
and see a second move of the locked disk refused as oVirt refuses it.

Usage: sdk_move.py URL PASSWORD TOKEN
  URL       the engine's address (http://127.0.0.1:PORT)
  PASSWORD  admin@internal's password
  TOKEN     the engine's own bearer token

Prints one line per check; exits non-zero at the first that fails.
"""

import sys
import time

import ovirtsdk4 as sdk
import ovirtsdk4.types as types

DEADLINE = 240  # seconds for the move to end


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


def main():
    url, password, token = sys.argv[1], sys.argv[2], sys.argv[3]
    api = url.rstrip("/") + "/ovirt-engine/api"

    # A wrong password is refused at sign-in, as oVirt's SSO refuses it.
    bad = sdk.Connection(url=api, username="admin@internal", password="wrong")
    try:
        bad.system_service().get()
        check(False, "a wrong password is refused")
    except sdk.AuthError as e:
        check("incorrect" in str(e), "a wrong password is refused: %s" % e)
    finally:
        bad.close(logout=False)

    # The engine's own token works as an access token.
    by_token = sdk.Connection(url=api, token=token)
    info = by_token.system_service().get()
    check(info.product_info.version.major == 4, "the API says version 4 with the engine's token")
    by_token.close(logout=False)

    # A password sign-in, as scripts do it (a trailing slash in the URL too).
    conn = sdk.Connection(url=api + "/", username="admin@internal", password=password)
    check(conn.test(raise_exception=True), "connection.test() with admin@internal's password")
    system = conn.system_service()

    disks_service = system.disks_service()
    found = disks_service.list(search="name=demo-disk")
    check(len(found) == 1 and found[0].name == "demo-disk", "the disk is found by name")
    disk = found[0]
    check(disk.status == types.DiskStatus.OK, "the disk is ok before the move")
    src = disk.storage_domains[0].id
    src_domain = conn.follow_link(disk.storage_domains[0])
    check(src_domain.name == "domain1", "follow_link reads the disk's domain: %s" % src_domain.name)

    sds = system.storage_domains_service().list(search="name=domain2")
    check(len(sds) == 1, "the destination domain is found by name")
    dst = sds[0]

    vms = system.vms_service().list(search="name=demo-vm")
    check(len(vms) == 1 and vms[0].status == types.VmStatus.UP, "the VM is up")
    attachments = system.vms_service().vm_service(vms[0].id).disk_attachments_service().list()
    check(any(a.disk.id == disk.id for a in attachments), "the VM's disk attachments list the disk")

    disk_service = disks_service.disk_service(disk.id)
    disk_service.move(
        storage_domain=types.StorageDomain(id=dst.id),
        query={"correlation_id": "sdk-move-1"},
    )
    check(True, "disk_service.move() accepted the move")

    # A second move of the locked disk is refused with oVirt's 409.
    try:
        disk_service.move(storage_domain=types.StorageDomain(id=dst.id))
        check(False, "a second move of a locked disk is refused")
    except sdk.Error as e:
        check(
            e.code == 409 and "The following disks are locked: demo-disk" in str(e),
            "a second move of a locked disk is refused: %s" % e,
        )

    # The job, by correlation id, while it runs or after.
    jobs_service = system.jobs_service()
    jobs = jobs_service.list(search="correlation_id=sdk-move-1")
    check(len(jobs) == 1, "the job is found by its correlation id")
    job = jobs[0]
    check(
        job.description == "Migrating Disk demo-disk from domain1 to domain2 of VM demo-vm",
        "the job's description: %s" % job.description,
    )

    deadline = time.time() + DEADLINE
    while True:
        disk = disk_service.get()
        if disk.status == types.DiskStatus.OK and disk.storage_domains[0].id == dst.id:
            break
        check(disk.status in (types.DiskStatus.LOCKED, types.DiskStatus.OK), "the disk is locked or ok while it moves")
        if time.time() > deadline:
            raise AssertionError("the disk did not reach domain2 within %ss" % DEADLINE)
        time.sleep(0.5)
    check(disk.storage_domains[0].id != src, "the disk is ok on domain2")

    job = jobs_service.job_service(job.id).get()
    check(job.status == types.JobStatus.FINISHED, "the job finished: %s" % job.status)
    check(job.end_time is not None and job.start_time <= job.end_time, "the job has its times")
    steps = jobs_service.job_service(job.id).steps_service().list()
    check(len(steps) >= 4, "the job lists its steps (%d)" % len(steps))
    check(
        all(s.status == types.StepStatus.FINISHED and s.progress == 100 for s in steps),
        "every step finished at 100 %%: %s" % [(s.description, s.status, s.progress) for s in steps],
    )

    # Unknown ids are oVirt's 404.
    try:
        disks_service.disk_service("00000000-0000-0000-0000-000000000000").get()
        check(False, "an unknown disk is not found")
    except sdk.NotFoundError as e:
        check(e.code == 404, "an unknown disk is a 404")

    conn.close()
    check(True, "signed out")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the test reads the message
        print("FAILED:", type(e).__name__, e, flush=True)
        sys.exit(1)
