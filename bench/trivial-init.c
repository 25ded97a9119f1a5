/* The least an init can do: say it ran, then power the VM off. The benchmark
 * boots cocoon's kernel with this as /init to measure the VMM+kernel floor,
 * and checks the marker: QEMU exits 0 after a kernel panic too. */
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
    static const char marker[] = "cocoon-bench-init-ran\n";

    write(1, marker, sizeof(marker) - 1); /* the kernel gave init the console */
    reboot(RB_AUTOBOOT);
    return 0;
}
