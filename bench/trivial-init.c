/* The least an init can do: power the VM off at once. The benchmark boots
 * cocoon's kernel with this as /init to measure the VMM+kernel floor. */
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
    reboot(RB_AUTOBOOT);
    return 0;
}
